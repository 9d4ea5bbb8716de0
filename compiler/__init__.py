"""pdl-convert: the compiler's command line and what it writes beside the generated modules (plan report,
the modeled per-op CSV). It drives converter -> passes -> templates, and calls the runtime only to have
real ttnn check the generated code and to verify it numerically.
"""
