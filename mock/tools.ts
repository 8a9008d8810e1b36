import { asObject } from './exchange.js'

/** A tool call the mock makes: the tool's name and its arguments as JSON text. */
export interface MockToolCall {
  id: string
  name: string
  arguments: string
}

/** Arguments that fit the tool's schema: each required property as the string `mock-<name>`. */
function argumentsFor (schema: unknown): string {
  const required = asObject(schema)?.required
  const args: Record<string, string> = {}
  if (Array.isArray(required)) for (const name of required) if (typeof name === 'string') args[name] = `mock-${name}`
  return JSON.stringify(args)
}

interface ToolSpec { name: string, schema: unknown }

function specs (tools: unknown, anthropic: boolean): ToolSpec[] {
  if (!Array.isArray(tools)) return []
  const out: ToolSpec[] = []
  for (const tool of tools) {
    const t = asObject(tool)
    const fn = anthropic ? t : asObject(t?.function)
    if (typeof fn?.name === 'string') out.push({ name: fn.name, schema: anthropic ? fn.input_schema : fn.parameters })
  }
  return out
}

/**
 * The tool calls a request forces: Chat's `tool_choice: "required"` or a named function,
 * Anthropic's `{type: "any"}` or `{type: "tool", name}`. "required"/"any" call every tool (in
 * parallel) unless parallel calls are off; otherwise the mock answers with text.
 */
export function forcedToolCalls (body: Record<string, unknown>, anthropic: boolean): MockToolCall[] {
  const tools = specs(body.tools, anthropic)
  const choice = body.tool_choice
  const c = asObject(choice)
  let chosen: ToolSpec[] = []
  if (anthropic) {
    if (c?.type === 'tool') chosen = tools.filter(t => t.name === c.name)
    else if (c?.type === 'any') chosen = c.disable_parallel_tool_use === true ? tools.slice(0, 1) : tools
  } else {
    const named = asObject(c?.function)?.name
    if (typeof named === 'string') chosen = tools.filter(t => t.name === named)
    else if (choice === 'required') chosen = body.parallel_tool_calls === false ? tools.slice(0, 1) : tools
  }
  const prefix = anthropic ? 'toolu_mock_' : 'call_mock_'
  return chosen.map((t, i) => ({ id: `${prefix}${i}`, name: t.name, arguments: argumentsFor(t.schema) }))
}

/** JSON text in three pieces, as providers stream arguments: split anywhere, even inside a string. */
export function argumentPieces (text: string): string[] {
  if (text.length < 3) return [text]
  const a = Math.floor(text.length / 3)
  const b = Math.floor((2 * text.length) / 3)
  return [text.slice(0, a), text.slice(a, b), text.slice(b)]
}

/** The i-th reasoning delta. */
export function reasoningText (i: number): string {
  return `think${i} `
}
