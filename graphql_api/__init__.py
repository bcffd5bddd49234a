"""mltrain: a GraphQL control plane for ML training."""
