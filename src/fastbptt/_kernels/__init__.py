"""Compiled kernels. Private: call them through the validated wrappers in fastbptt."""
