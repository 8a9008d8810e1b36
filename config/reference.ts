/**
 * `docs/configuration.md`, generated from the option table like `.env.example` and `--help`, so
 * the reference lists every setting the loader accepts and cannot drift from it
 * (`npm run gen:env-example` writes both; test/docs.test.ts fails when the committed file differs).
 */
import { sections } from './schema.js'
import { envDefault, flagForms, sectionTitle, settable, yamlKey } from './describe.js'
import { FILE_VARIABLES } from './env-example.js'
import type { OptionSpec } from './types.js'

/** The projects whose configuration names the gateway reads, by the number their rows cite. */
export const PREDECESSORS: Record<string, { name: string, guide: string }> = {
  '000': { name: 'aigc-proxy', guide: 'migration/aigc-proxy.md' },
  '001': { name: 'jb-proxy-llm', guide: 'migration/jb-proxy-llm.md' },
  '002': { name: 'ai-proxy', guide: 'migration/ai-proxy.md' },
  '003': { name: 'openai-proxy', guide: 'migration/openai-proxy.md' },
  '004': { name: 'free-sophnet-api', guide: 'migration/free-sophnet-api.md' }
}

/** A row's `seed` (`000 -p, 001/002 PROXY_PORT`) with names: `aigc-proxy -p, jb-proxy-llm/ai-proxy PROXY_PORT`. */
export function predecessorNames (seed: string): string {
  return seed.replace(/(?<![\d,.])00[0-4]\b/g, (n) => PREDECESSORS[n].name)
}

/** `seed 004's file` in a description → `free-sophnet-api's file`. */
function namedInText (text: string): string {
  return text.replace(/\bseeds? (00[0-4](?:\/00[0-4])*)\b/g, (_all, numbers: string) => predecessorNames(numbers))
}

const HEADER = `# Configuration reference

<!-- Generated from the option table (config/sections/*.ts) by \`npm run gen:env-example\`: do not edit by hand. -->

Every setting the gateway reads, grouped by concern, with its YAML key, its environment names (the
gateway's own \`GATEWAY_*\` name first, then the names of the projects it replaces, read when the
native name is unset), its flags and its built-in default. The same rows produce \`--help\` and
\`.env.example\`.

**Precedence**, lowest first: built-in defaults < YAML file < environment variables < command-line
flags. The YAML file is \`--config FILE\` (\`-c\`), or \`GATEWAY_CONFIG_FILE\` / \`CONFIG_FILE\`, or
else \`./gateway.yaml\` (or free-sophnet-api's \`./openai-chat-proxy-config.yaml\`) when present. YAML
values may use \`\${ENV_NAME}\` placeholders; a missing variable stops the boot. A \`.env\` file in
the working directory is read when present and never overrides a real environment variable.

**Flags** accept Go style (\`-p 2023\`, \`-p=2023\`), GNU style (\`--port 8080\`, \`--port=8080\`) and
ai-proxy's \`--ENV_NAME value\`: every environment name also works as a flag. Bad configuration
(unknown log level, non-numeric port, malformed URL, unreadable or invalid YAML, unknown YAML key)
stops the process with exit code 2 and one line naming the key, the bad value and the expected
form. \`--check-config\` validates and prints the effective configuration with secrets masked;
\`--help\` lists every option.

**Secrets** (keys, tokens, credential headers, the Redis URL) are masked by \`--check-config\` and
removed from every log line.

The *from* column names the project a name comes from; its migration guide is in
[migration/](migration/README.md). Rows without a YAML key exist only as environment names or
flags. What each setting does in context: the topic pages linked from the [README](../README.md).
`

function code (text: string): string {
  return `\`${text}\``
}

function cell (text: string): string {
  return text.replace(/\|/g, '\\|')
}

function row (o: OptionSpec): string {
  const yaml = yamlKey(o)
  const def = envDefault(o)
  return `| ${[
    yaml !== null ? code(yaml) : '',
    o.env.map(code).join(', '),
    flagForms(o).map(code).join(', '),
    def === '' ? '' : code(def),
    cell(namedInText(o.doc)) + (o.secret === true ? ' (secret)' : ''),
    o.seed !== undefined ? cell(predecessorNames(o.seed)) : ''
  ].join(' | ')} |`
}

export function configurationReference (): string {
  const lines = [HEADER, '## Configuration file', '', '| env | aliases | flags | what |', '| --- | --- | --- | --- |']
  for (const v of FILE_VARIABLES) lines.push(`| ${code(v.name)} | ${(v.aliases ?? []).map(code).join(', ')} | \`--config\`, \`-c\` | ${cell(namedInText(v.doc))} |`)
  for (const section of sections) {
    const options = settable(section.options)
    if (options.length === 0) continue
    lines.push('', `## ${sectionTitle(section.key)}`, '', '| YAML key | env | flags | default | what | from |', '| --- | --- | --- | --- | --- | --- |')
    for (const o of options) lines.push(row(o))
  }
  return `${lines.join('\n')}\n`
}
