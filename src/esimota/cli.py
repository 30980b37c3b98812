"""The `esimota` command."""
def main():
    print("esimota")
