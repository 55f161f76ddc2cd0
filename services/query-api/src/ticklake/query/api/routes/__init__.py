"""One router per resource; :func:`ticklake.query.api.app.create_app` includes them all."""
