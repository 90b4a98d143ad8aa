"""Compose-time checks the schema's types cannot express, one module per topic.

Each check takes the composed config and returns a list of problems (empty when all is well);
llmft.config.validate runs them all and reports every problem at once.
"""
