"""esimota.domain: see DESIGN §1."""
