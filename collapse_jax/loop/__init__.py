"""The self-consuming loop (`recursive.run_recursive`): training-set paradigms, the feature
spaces, and each generation's report."""
