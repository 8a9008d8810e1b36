import { Type, type TUnsafe } from '@sinclair/typebox'

/** A string enum as plain JSON-schema `enum`, so a validation error can list the allowed values. */
export function StringEnum<T extends string> (values: readonly T[], opts: { default?: T, description?: string } = {}): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...opts })
}
