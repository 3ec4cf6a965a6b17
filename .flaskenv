# Read by `flask run` (through python-dotenv) from the repository root.
# A path works without installing the package: Flask adds src/ to sys.path.
FLASK_APP=src/todo
FLASK_RUN_HOST=127.0.0.1
FLASK_RUN_PORT=5000
