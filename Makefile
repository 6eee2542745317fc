# The seed's verbs (its justfile's build, list, delete, test, validate) for a Bulkhead
# checkout. Client targets reach the server as `bulkhead` does: E2B_API_URL/E2B_API_KEY,
# else the local server and its key file (/var/lib/bulkhead/api-key).
#
#   make serve                          # the quickstart: build everything, serve on :3000
#   make build DIR=examples/roma-template ARGS='--build-arg S3_BUCKET_NAME=b --secret id=aws_access_key_id,env=AWS_ACCESS_KEY_ID --secret id=aws_secret_access_key,env=AWS_SECRET_ACCESS_KEY'
#   make list
#   make delete NAME=roma-dspy-sandbox
#   make validate NAME=roma-dspy-sandbox
#   make test                           # the whole suite, as CI runs it
BULKHEAD ?= target/release/bulkhead
NAME ?= base
DIR ?= templates/base
ARGS ?=

.PHONY: serve binary build list delete validate doctor test

binary:
	cargo build --release --locked -p bulkhead

serve:
	bash scripts/ci/setup-00-apt.sh
	bash scripts/ci/setup-05-toolchain.sh
	bash scripts/build-rootfs.sh
	cargo run --release --locked -p bulkhead -- serve \
	  --template-dir templates/base --template-dir templates/code-interpreter

build: binary
	$(BULKHEAD) template build $(DIR) $(ARGS)

list: binary
	$(BULKHEAD) template list

delete: binary
	$(BULKHEAD) template rm $(NAME)

validate: binary
	$(BULKHEAD) validate $(NAME)

doctor: binary
	$(BULKHEAD) doctor

test:
	bash .ci/run
