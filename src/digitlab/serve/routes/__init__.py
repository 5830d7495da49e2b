"""The app's routes, a module per capability: predict (digits in, predictions out), read (a
number in a picture, digit by digit), model (what is served),
health (/healthz), page (the drawing page, its static files and the API docs). Each has an APIRouter that
`digitlab.serve.app.create_app` includes."""
