"""Hallucination probes: truthfulness, abstention, fabricated entities, consistency, faithfulness."""
