"""``tuneforge bench``: every training path on the same model, data and batches, in one run.

A plain PyTorch loop (packed, and naively padded), the HF Trainer and tuneforge's full path (Ray Data ->
Ray Train -> DeepSpeed through ``run_job``) are timed the same way (median tokens/s of log windows after
a warm-up), against the machine's own measured matmul peak. Ray is imported only inside the functions
that drive the full path and the Ray Data tokenization measurement.
"""
