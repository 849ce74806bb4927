"""Remediation: three concrete actions per incident (templates, optional LLM)."""
