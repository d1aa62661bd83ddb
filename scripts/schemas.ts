/**
 * The editor schemas in schemas/ (JSON Schema 2020-12), made from the descriptions the checker
 * uses and nothing else: each module's argument spec (src/modules/), the roles' argument specs
 * (roles/<name>/argument_specs.yaml), the stage, role-reference and task keywords
 * (src/load/playbook.ts, src/load/tasks.ts) and the option language itself (src/spec/types.ts).
 * scripts/gen-docs.ts writes them; test/unit/gen-docs.test.ts fails when they drift.
 */
import { modules } from '../src/modules/index.ts';
import type { Module } from '../src/modules/contract.ts';
import { ROLE_REF_OPTIONS, STAGE_OPTIONS } from '../src/load/playbook.ts';
import { TASK_OPTIONS } from '../src/load/tasks.ts';
import { argSchema, moduleArgsSchema, varsSchema, type JsonSchema } from '../src/spec/schema.ts';
import { TYPES, type OptionSpec } from '../src/spec/types.ts';

const DRAFT = 'https://json-schema.org/draft/2020-12/schema';

/** A task list (tasks.yaml, handlers.yaml; gates.yaml with the read-only modules only). */
function taskList(mods: Module<any>[], title: string): JsonSchema {
  const properties: JsonSchema = {};
  for (const [k, o] of Object.entries(TASK_OPTIONS)) properties[k] = argSchema(o);
  for (const m of mods) {
    const args = moduleArgsSchema(m.spec, m.doc);
    const free = Object.values(m.spec.options).some((o) => o.aliases?.includes('_raw_params'));
    properties[m.name] = { description: m.doc, anyOf: [args, { type: 'null' }, ...(free ? [{ type: 'string', description: 'free form: the command line' }] : [])] };
  }
  return {
    $schema: DRAFT,
    title,
    type: ['array', 'null'],
    items: {
      type: 'object',
      properties,
      additionalProperties: false,
      // exactly one module key per task
      oneOf: mods.map((m) => ({ required: [m.name] })),
    },
  };
}

function playbook(roleNames: string[], vars: JsonSchema): JsonSchema {
  const stage: JsonSchema = {};
  const varsRef = (description: string) => ({ description, anyOf: [{ $ref: '#/$defs/vars' }, { type: 'null' }] });
  for (const [k, o] of Object.entries(STAGE_OPTIONS)) stage[k] = k === 'vars' ? varsRef(o.description) : argSchema(o);
  const ref: JsonSchema = {};
  for (const [k, o] of Object.entries(ROLE_REF_OPTIONS)) ref[k] = k === 'vars' ? varsRef(o.description) : argSchema(o);
  const roleName = { anyOf: [{ enum: roleNames }, { type: 'string' }] };
  ref.role = { ...ref.role as JsonSchema, ...roleName };
  stage.roles = {
    description: STAGE_OPTIONS.roles.description,
    anyOf: [{ type: 'array', items: { anyOf: [{ ...roleName, description: 'A role name.' }, { type: 'object', properties: ref, required: ['role'], additionalProperties: false }] } }, { type: 'null' }],
  };
  return {
    $schema: DRAFT,
    title: 'passthru playbook: a list of stages',
    type: 'array',
    items: { type: 'object', properties: stage, required: ['hosts', 'roles'], additionalProperties: false },
    $defs: { vars },
  };
}

/** A YAML inventory, as Ansible reads it: groups with hosts, vars and children. */
function inventory(vars: JsonSchema): JsonSchema {
  const hostVars = { anyOf: [{ $ref: '#/$defs/vars' }, { type: 'null' }] };
  return {
    $schema: DRAFT,
    title: 'passthru (Ansible YAML) inventory',
    type: 'object',
    additionalProperties: { $ref: '#/$defs/group' },
    $defs: {
      group: {
        anyOf: [
          {
            type: 'object',
            properties: {
              hosts: { anyOf: [{ type: 'object', additionalProperties: hostVars }, { type: 'null' }] },
              vars: hostVars,
              children: { anyOf: [{ type: 'object', additionalProperties: { $ref: '#/$defs/group' } }, { type: 'null' }] },
            },
            additionalProperties: false,
          },
          { type: 'null' },
        ],
      },
      vars: { ...vars, description: 'Host variables (those the roles read are described; any other is allowed).' },
    },
  };
}

/** roles/<name>/argument_specs.yaml: the option language itself. */
function argumentSpecs(): JsonSchema {
  const keys: Record<keyof OptionSpec, JsonSchema> = {
    type: { enum: [...TYPES], description: 'The type of the value.' },
    description: { type: 'string', description: 'What the variable means (shown in README.md and in messages).' },
    default: { description: 'The value when none is given (must pass the option itself).' },
    required: { type: 'boolean' },
    elements: { enum: [...TYPES], description: 'The type of each element of a list.' },
    choices: { type: 'array', description: 'The accepted values.' },
    pattern: { type: 'string', description: 'A regular expression the whole string (each string element of a list) must match.' },
    min: { type: 'number', description: 'Numbers: the least value. Strings and lists: the least length.' },
    max: { type: 'number', description: 'Numbers: the greatest value. Strings and lists: the greatest length.' },
    options: { type: 'object', additionalProperties: { $ref: '#/$defs/option' }, description: 'The keys of a dict.' },
    aliases: { type: 'array', items: { type: 'string' } },
    secret: { type: 'boolean', description: 'Never shown in a message.' },
    multiline: { type: 'boolean', description: 'A string that may span lines.' },
  };
  return {
    $schema: DRAFT,
    title: "passthru role argument specs (Ansible's meta/argument_specs.yml shape)",
    type: 'object',
    required: ['argument_specs'],
    additionalProperties: false,
    properties: {
      argument_specs: {
        type: 'object',
        additionalProperties: false,
        properties: {
          main: {
            type: 'object',
            additionalProperties: false,
            properties: {
              short_description: { type: 'string' },
              description: {},
              author: {},
              options: { type: 'object', additionalProperties: { $ref: '#/$defs/option' } },
            },
          },
        },
      },
    },
    $defs: {
      option: { type: 'object', required: ['type', 'description'], properties: { ...keys, version_added: {} }, additionalProperties: false },
    },
  };
}

/** Every schema file, by its name under schemas/. */
export function schemas(roleOptions: Record<string, OptionSpec>, roleNames: string[]): Record<string, JsonSchema> {
  const all = [...modules.values()];
  const vars = varsSchema(roleOptions);
  return {
    'playbook.json': playbook(roleNames, vars),
    'tasks.json': taskList(all, 'passthru task list (a role\'s tasks.yaml or handlers.yaml)'),
    'gates.json': taskList(all.filter((m) => m.readOnly), "passthru gate list (a role's gates.yaml: read-only modules only)"),
    'inventory.json': inventory(vars),
    'argument_specs.json': argumentSpecs(),
  };
}
