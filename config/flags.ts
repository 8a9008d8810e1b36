/**
 * Command-line parsing that accepts every style the seeds' users already type:
 * Go's single dash (`-p 2023`, `-nocid`, `-api=https://…`), GNU double dash (`--port=8080`),
 * and seed 002's `--ENV_NAME value`.
 */
export interface ParsedFlag { name: string, value: string | true, raw: string }

export class FlagError extends Error {}

/**
 * @param bare names of boolean flags that may stand alone (the next word is not their value)
 * @param known every accepted flag name; anything else is refused here with its own message
 */
export function parseFlags (argv: string[], bare: Set<string>, known: Set<string>): ParsedFlag[] {
  const out: ParsedFlag[] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]
    if (word === 'help') { out.push({ name: 'help', value: true, raw: word }); continue } // seed 000: `aigc-proxy help`
    const m = /^--?([A-Za-z][\w.-]*)(?:=(.*))?$/s.exec(word)
    if (m === null) throw new FlagError(`unexpected argument "${word}" (flags look like -name value or --name=value)`)
    const name = m[1]
    if (!known.has(name)) throw new FlagError(`unknown flag ${word.split('=')[0]} (see --help for the list of options)`)
    if (m[2] !== undefined) { out.push({ name, value: m[2], raw: word }); continue }
    const next = argv[i + 1]
    if (bare.has(name) && (next === undefined || !/^(true|false|1|0)$/i.test(next))) {
      out.push({ name, value: true, raw: word })
      continue
    }
    if (next === undefined) throw new FlagError(`flag ${word} needs a value`)
    out.push({ name, value: next, raw: word })
    i++
  }
  return out
}
