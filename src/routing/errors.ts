/**
 * What routing refuses. The messages name nothing internal: no target names, hosts or addresses,
 * so a probing client learns nothing about the upstreams behind the gateway.
 */
import { coded } from '../errors.js'

export const NoTargetError = coded('GW_NO_TARGET', 'No upstream is configured for this host or path', 404, 'invalid_request_error', 'not_found')
export const TargetForbiddenError = coded('GW_TARGET_FORBIDDEN', 'This API key may not use this upstream', 403, 'permission_error', 'target_not_allowed')
export const TargetHostRefusedError = coded('GW_TARGET_HOST_REFUSED', 'X-Target-Host names a host that is not allowed', 400, 'invalid_request_error', 'target_host_not_allowed')
export const InvalidPathError = coded('GW_INVALID_PATH', 'The request target must be a path without "." or ".." segments', 400, 'invalid_request_error', 'invalid_path')
export const AmbiguousHostError = coded('GW_AMBIGUOUS_HOST', 'The request has more than one Host header', 400, 'invalid_request_error', 'invalid_host')
export const UpstreamKeyScopeError = coded('GW_UPSTREAM_KEY_SCOPE', 'This API key has no upstream credentials for this upstream', 403, 'permission_error', 'upstream_key_not_for_target')
export const NoDeploymentError = coded('GW_NO_DEPLOYMENT', 'No deployment of this model can take this request on this endpoint', 400, 'invalid_request_error', 'model_not_available')
