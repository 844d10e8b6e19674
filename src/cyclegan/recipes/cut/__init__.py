"""recipes/cut: the recipe's whole home (its model, config section and what only it uses)."""
