"""Small demo datasets written by llmft (regenerate with `python -m llmft.data.demo.generate`)."""
