.PHONY: demo test golden lint

demo:
	scripts/demo

test:
	scripts/test

golden:
	.venv/bin/python -m tfvideo.api.golden --update

lint:
	.venv/bin/ruff check .
