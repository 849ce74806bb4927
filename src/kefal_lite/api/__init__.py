"""HTTP handlers: one module per resource. They translate requests to calls and back."""
