"""Model building blocks: tokenizers, base models, tuning methods, save/merge. No Ray here."""
