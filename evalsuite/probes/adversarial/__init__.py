"""Adversarial probes: perturbed inputs, answer-option order, prompt format, adaptive attacks.

Modules that need textattack import it lazily through ``textattack_env.load_textattack`` (offline,
no downloads); importing this package does not import textattack.
"""
