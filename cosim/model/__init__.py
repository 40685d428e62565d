"""Model architecture specs (from Hugging Face config.json) and forward-pass operators."""
