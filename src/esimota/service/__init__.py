"""esimota.service: see DESIGN §1."""
