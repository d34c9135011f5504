"""Process-wide machinery: the backend switch (backend.py), BLAS thread control
(threads.py), the one set of array checks (validation.py), show_config (config.py).
Pure Python: the reference uses validation.py too."""
