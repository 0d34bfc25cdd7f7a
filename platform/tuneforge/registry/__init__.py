"""Model registry: resolve model references, gate promotion on evaluation, roll back. No Ray here."""
