"""esimota.codec: see DESIGN §1."""
