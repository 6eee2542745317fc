# syntax=docker/dockerfile:1
# Stage 1: the toolkit's helper module, byte-compiled once.
FROM bulkhead/debian AS tools
COPY roma_paths.py /build/roma_paths.py
RUN python3 -m compileall -q /build && mkdir -p /out && cp -r /build/. /out/

# Stage 2: the sandbox.
FROM bulkhead/debian
ARG AWS_REGION=us-east-1
ARG S3_BUCKET_NAME
# Not secrets: the agent reads these to find its files (the keys are build secrets, used
# only by the server's mount).
ENV AWS_REGION=${AWS_REGION} \
    ROMA_S3_BUCKET=${S3_BUCKET_NAME} \
    STORAGE_BASE_PATH=/opt/sentient
COPY requirements.txt /tmp/requirements.txt
# requirements.txt is empty, as in the seed; a line added there is installed (needs egress).
RUN if grep -qvE '^[[:space:]]*(#|$)' /tmp/requirements.txt; then \
        pip install --no-cache-dir --break-system-packages -r /tmp/requirements.txt; \
    fi && rm /tmp/requirements.txt
COPY --from=tools /out/ /usr/local/lib/roma/
COPY start-up.sh /usr/local/bin/start-up.sh
RUN chmod 0755 /usr/local/bin/start-up.sh
ENV PYTHONPATH=/usr/local/lib/roma
WORKDIR /home/user
