"""GraphQL documents the tests send, written as a client would write them."""

MODEL_FIELDS = """
  modelId modelName version modelType status metrics createdDate deployedDate
"""
JOB_FIELDS = """
  jobId modelId status hyperparameters datasetId startedDate completedDate metrics logsUrl
  createdDate failureReason
"""
ERROR_FIELDS = """
  __typename
  ... on Error { code message }
  ... on NotFoundError { resource id field }
  ... on InvalidTransitionError { currentStatus requestedStatus }
  ... on ConflictError { field }
  ... on ValidationError { field rule }
"""

REGISTER = f"""
mutation($input: RegisterModelVersionInput!) {{
  registerModelVersion(input: $input) {{ ... on ModelVersion {{ {MODEL_FIELDS} }} {ERROR_FIELDS} }}
}}"""

PROMOTE = f"""
mutation($id: ID!, $to: ModelStatus) {{
  promoteModelVersion(modelId: $id, to: $to) {{
    ... on ModelVersion {{ {MODEL_FIELDS} }} {ERROR_FIELDS}
  }}
}}"""

ARCHIVE = f"""
mutation($id: ID!) {{
  archiveModelVersion(modelId: $id) {{ ... on ModelVersion {{ {MODEL_FIELDS} }} {ERROR_FIELDS} }}
}}"""

UPDATE_MODEL_METRICS = f"""
mutation($id: ID!, $metrics: JSON!) {{
  updateModelVersionMetrics(modelId: $id, metrics: $metrics) {{
    ... on ModelVersion {{ {MODEL_FIELDS} }} {ERROR_FIELDS}
  }}
}}"""

CREATE_JOB = f"""
mutation($input: CreateTrainingJobInput!) {{
  createTrainingJob(input: $input) {{ ... on TrainingJob {{ {JOB_FIELDS} }} {ERROR_FIELDS} }}
}}"""


def job_mutation(name: str, args: str = "", params: str = "") -> str:
    return f"""
mutation($id: ID!{params}) {{
  {name}(jobId: $id{args}) {{ ... on TrainingJob {{ {JOB_FIELDS} }} {ERROR_FIELDS} }}
}}"""


START = job_mutation("startTrainingJob")
CANCEL = job_mutation("cancelTrainingJob")
COMPLETE = job_mutation("completeTrainingJob", ", metrics: $metrics", ", $metrics: JSON")
FAIL = job_mutation("failTrainingJob", ", reason: $reason", ", $reason: String!")
REPORT = job_mutation("reportTrainingMetrics", ", metrics: $metrics", ", $metrics: JSON!")
SET_LOGS = job_mutation("setTrainingJobLogsUrl", ", logsUrl: $url", ", $url: String!")

MODEL = f"query($id: ID!) {{ modelVersion(modelId: $id) {{ {MODEL_FIELDS} }} }}"
JOB = f"query($id: ID!) {{ trainingJob(jobId: $id) {{ {JOB_FIELDS} }} }}"

#: The job mutations' shape for ``claimTrainingJob``: ``$id`` is the claiming worker's id.
CLAIM_DEFAULT_QUEUE = f"""
mutation($id: ID!) {{
  claimTrainingJob(workerId: $id) {{ ... on TrainingJob {{ {JOB_FIELDS} }} {ERROR_FIELDS} }}
}}"""

CLAIM = f"""
mutation($queue: String!, $worker: ID!, $leaseSeconds: Int) {{
  claimTrainingJob(queue: $queue, workerId: $worker, leaseSeconds: $leaseSeconds) {{
    ... on TrainingJob {{ {JOB_FIELDS} queue workerId leaseToken leaseExpiresAt lastHeartbeatAt }}
    {ERROR_FIELDS}
  }}
}}"""

LEASE_FIELDS = "queue workerId leaseToken leaseExpiresAt lastHeartbeatAt"
HEARTBEAT = f"""
mutation($id: ID!, $token: String!) {{
  heartbeatTrainingJob(jobId: $id, leaseToken: $token) {{
    ... on TrainingJob {{ {JOB_FIELDS} {LEASE_FIELDS} }}
    {ERROR_FIELDS}
    ... on LeaseLostError {{ jobId }}
  }}
}}"""
START_LEASED = f"""
mutation($id: ID!, $worker: ID, $leaseSeconds: Int) {{
  startTrainingJob(jobId: $id, workerId: $worker, leaseSeconds: $leaseSeconds) {{
    ... on TrainingJob {{ {JOB_FIELDS} {LEASE_FIELDS} }}
    {ERROR_FIELDS}
  }}
}}"""


def fenced_job_mutation(name: str, args: str = "", params: str = "") -> str:
    """A worker's write under its lease (``$token`` may be null)."""
    return f"""
mutation($id: ID!, $token: String{params}) {{
  {name}(jobId: $id, leaseToken: $token{args}) {{
    ... on TrainingJob {{ {JOB_FIELDS} {LEASE_FIELDS} }}
    {ERROR_FIELDS}
    ... on LeaseLostError {{ jobId }}
  }}
}}"""


FENCED_REPORT = fenced_job_mutation(
    "reportTrainingMetrics", ", metrics: $metrics", ", $metrics: JSON!"
)
FENCED_COMPLETE = fenced_job_mutation(
    "completeTrainingJob", ", metrics: $metrics", ", $metrics: JSON"
)
FENCED_FAIL = fenced_job_mutation("failTrainingJob", ", reason: $reason", ", $reason: String!")

RETRY = f"""
mutation($id: ID!, $hyperparameters: JSON) {{
  retryTrainingJob(jobId: $id, hyperparameters: $hyperparameters) {{
    ... on TrainingJob {{ {JOB_FIELDS} attempt retryOf queue }}
    {ERROR_FIELDS}
  }}
}}"""

CANCEL_GRACEFULLY = f"""
mutation($id: ID!, $grace: Int) {{
  cancelTrainingJob(jobId: $id, graceSeconds: $grace) {{
    ... on TrainingJob {{ {JOB_FIELDS} cancelRequestedAt }}
    {ERROR_FIELDS}
  }}
}}"""
ACKNOWLEDGE_CANCEL = fenced_job_mutation("acknowledgeTrainingJobCancel")
