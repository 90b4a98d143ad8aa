"""Compose-time checks the schema's types cannot express, one module per topic.

Each check takes the composed config and returns a list of problems (empty when all is well);
llmft.checks.validate runs them all (right after composition, before torch is imported) and reports every problem at once.
"""
