import { Ajv, type JSONSchemaType, type ValidateFunction } from 'ajv';

export type { JSONSchemaType, ValidateFunction };

const strictValidator = new Ajv({ strict: true, allErrors: true });

/** Compiles a JSON schema once; the project's single way to validate structured input. */
export function compileSchema<T>(schema: JSONSchemaType<T>): ValidateFunction<T> {
  return strictValidator.compile(schema);
}

/** One line per schema violation, for error messages. */
export function describeSchemaErrors(validate: ValidateFunction): string[] {
  return (validate.errors ?? []).map((error) => {
    const where = error.instancePath || '(root)';
    return `${where} ${error.message ?? 'is invalid'}`;
  });
}
