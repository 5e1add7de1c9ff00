"""Server-rendered web UI for legal and operations staff: Jinja2 templates, self-hosted static files,
server-side sessions with role scopes, and CSRF protection on every form. web/ui/setup.py wires it into
the app; web/ui/pages/ holds its pages, one module per resource."""
