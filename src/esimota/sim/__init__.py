"""esimota.sim: see DESIGN §1."""
