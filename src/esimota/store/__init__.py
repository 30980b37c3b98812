"""esimota.store: see DESIGN §1."""
