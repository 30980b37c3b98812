"""esimota.api: see DESIGN §1."""
