"""sample-app: a small standard-library web service released by the pipeline."""
