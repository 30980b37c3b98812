"""esimota.ota: see DESIGN §1."""
