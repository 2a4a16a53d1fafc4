"""Configuration: the project's config loader and the base classes of every parameter section."""
