"""The screens' templates and static files, served by depot.http.pages (SPEC section 5)."""
