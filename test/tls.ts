import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './tmp.js'

/**
 * A throwaway self-signed certificate for 127.0.0.1 (openssl), or for `dnsName` only when given,
 * for upstreams the gateway must not trust by default.
 */
export function selfSigned (dnsName?: string): { key: string, cert: string, certFile: string } {
  const dir = tempDir('gw-tls-')
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  // a name only, when given: a connection that checked the certificate against the address would fail
  const names = dnsName !== undefined ? `DNS:${dnsName}` : 'IP:127.0.0.1'
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '1', '-subj', `/CN=${dnsName ?? '127.0.0.1'}`, '-addext', `subjectAltName=${names}`], { stdio: 'ignore' })
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile }
}
