"""What remote::bedrock inference and safety share: llama-stack 0.1.0's config, the boto3
client built from it (credentials, retries, timeouts, per-request keys) and the mapping of
Bedrock's errors to the stack's."""
