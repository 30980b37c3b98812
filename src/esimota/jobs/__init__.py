"""esimota.jobs: see DESIGN §1."""
