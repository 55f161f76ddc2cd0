"""HTTP glue: the app factory, dependencies, response models and one router per resource."""
