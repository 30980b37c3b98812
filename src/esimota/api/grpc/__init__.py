"""esimota.api.grpc: see DESIGN §1."""
