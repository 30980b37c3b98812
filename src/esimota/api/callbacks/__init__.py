"""esimota.api.callbacks: see DESIGN §1."""
