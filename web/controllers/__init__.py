"""HTTP controllers: thin; they parse, call a service, and shape the answer."""
