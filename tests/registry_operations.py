"""GraphQL documents of the deployable registry (issue 14), written as a client would."""

from tests.operations import ERROR_FIELDS, MODEL_FIELDS

DEPLOY_FIELDS = """
  artifactUri artifactDigest description tags { key value } createdBy sourceJobId
"""
VERSION_FIELDS = MODEL_FIELDS + DEPLOY_FIELDS

REGISTER_DEPLOYABLE = f"""
mutation($input: RegisterModelVersionInput!) {{
  registerModelVersion(input: $input) {{
    ... on ModelVersion {{ {VERSION_FIELDS} }} {ERROR_FIELDS}
  }}
}}"""

UPDATE_VERSION = f"""
mutation($id: ID!, $description: String, $tags: [TagInput!], $artifactUri: String,
         $artifactDigest: String) {{
  updateModelVersion(modelId: $id, description: $description, tags: $tags,
                     artifactUri: $artifactUri, artifactDigest: $artifactDigest) {{
    ... on ModelVersion {{ {VERSION_FIELDS} }} {ERROR_FIELDS}
  }}
}}"""

VERSION = f"""
query($id: ID!) {{ modelVersion(modelId: $id) {{ {VERSION_FIELDS} }} }}"""

SET_ALIAS = f"""
mutation($name: String!, $alias: String!, $id: ID!, $expected: ID) {{
  setModelAlias(modelName: $name, alias: $alias, modelId: $id, expectedModelId: $expected) {{
    ... on ModelVersion {{ modelId aliases }} {ERROR_FIELDS}
  }}
}}"""

DELETE_ALIAS = f"""
mutation($name: String!, $alias: String!, $expected: ID) {{
  deleteModelAlias(modelName: $name, alias: $alias, expectedModelId: $expected) {{
    ... on ModelVersion {{ modelId }} {ERROR_FIELDS}
  }}
}}"""

BY_ALIAS = """
query($name: String!, $alias: String!) {
  modelVersionByAlias(modelName: $name, alias: $alias) {
    modelId version artifactUri artifactDigest
  }
}"""

VERSION_ALIASES = "query($id: ID!) { modelVersion(modelId: $id) { aliases } }"

ROLLBACK = f"""
mutation($name: String!, $to: ID!, $reason: String!) {{
  rollbackModelVersion(modelName: $name, toModelId: $to, reason: $reason) {{
    ... on ModelVersion {{ modelId status deployedDate }} {ERROR_FIELDS}
  }}
}}"""
