"""esimota.api.http: see DESIGN §1."""
