//! The reference page of each kind (`docs/reference/<kind>.md`), generated from the CRD
//! schema so it cannot drift from what the API server enforces: every field with its type,
//! constraints and doc comment, and every CEL rule with its message.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The file a kind's page is kept in under `docs/reference/`: `<kind, lowercase>.md`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.md", crd.spec.names.kind.to_ascii_lowercase())
}

/// The Markdown page of one CRD (its served version).
pub fn markdown(crd: &CustomResourceDefinition) -> String {
    let names = &crd.spec.names;
    let version = &crd.spec.versions[0];
    let root = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every CRD of the operator has a schema");
    let mut page = String::new();
    let _ = writeln!(page, "# {}\n", names.kind);
    let _ = writeln!(
        page,
        "<!-- Generated from the CRD schema by `apikey-operator docs` (make docs); do not edit. -->\n"
    );
    let _ = writeln!(
        page,
        "`{}/{}` · {} · plural `{}` · short name{} {} · categories {}\n",
        crd.spec.group,
        version.name,
        crd.spec.scope.to_lowercase(),
        names.plural,
        if names.short_names.as_ref().is_some_and(|s| s.len() > 1) {
            "s"
        } else {
            ""
        },
        code_list(names.short_names.as_deref().unwrap_or_default()),
        code_list(names.categories.as_deref().unwrap_or_default()),
    );
    if let Some(columns) = &version.additional_printer_columns {
        let _ = writeln!(
            page,
            "## `kubectl get` columns\n\n| Column | Value | Shown |\n|---|---|---|"
        );
        for column in columns {
            let shown = if column.priority.unwrap_or_default() > 0 {
                "with `-o wide`"
            } else {
                "always"
            };
            let _ = writeln!(page, "| {} | `{}` | {shown} |", column.name, column.json_path);
        }
        page.push('\n');
    }
    for section in ["spec", "status"] {
        let Some(schema) = root.properties.as_ref().and_then(|p| p.get(section)) else {
            continue;
        };
        let mut rows = Vec::new();
        let mut rules = Vec::new();
        walk(section, schema, &mut rows, &mut rules);
        let _ = writeln!(page, "## `{section}`\n");
        if let Some(description) = &schema.description {
            let _ = writeln!(page, "{}\n", one_line(description));
        }
        let _ = writeln!(
            page,
            "| Field | Type | Required | Description |\n|---|---|---|---|"
        );
        for row in rows {
            page.push_str(&row);
        }
        if !rules.is_empty() {
            let _ = writeln!(page, "\nValidation rules (CEL, checked by the API server):\n");
            for rule in rules {
                page.push_str(&rule);
            }
        }
        page.push('\n');
    }
    page.truncate(page.trim_end().len());
    page.push('\n');
    page
}

/// Adds a table row for every field under `schema` (at `path`) and a line for every rule.
fn walk(path: &str, schema: &JSONSchemaProps, rows: &mut Vec<String>, rules: &mut Vec<String>) {
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        rules.push(format!(
            "- `{path}`: {} — `{}`\n",
            rule.message.as_deref().unwrap_or("(no message)"),
            rule.rule.replace('`', "'")
        ));
    }
    let required_fields = schema.required.clone().unwrap_or_default();
    for (name, child) in schema.properties.iter().flatten() {
        let child_path = format!("{path}.{name}");
        rows.push(format!(
            "| `{child_path}` | {} | {} | {} |\n",
            type_of(child),
            if required_fields.contains(name) { "yes" } else { "" },
            cell(child)
        ));
        walk(&child_path, child, rows, rules);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
        walk(&format!("{path}[]"), item, rows, rules);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
        walk(&format!("{path}.<key>"), values, rows, rules);
    }
}

/// `string`, `integer (int64)`, `[]object`, `map[string]string`.
fn type_of(schema: &JSONSchemaProps) -> String {
    let base = schema.type_.clone().unwrap_or_else(|| "any".into());
    match base.as_str() {
        "array" => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(item)) => format!("[]{}", type_of(item)),
            _ => "array".into(),
        },
        "object" => match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => format!("map[string]{}", type_of(values)),
            _ => "object".into(),
        },
        _ => match &schema.format {
            Some(format) => format!("{base} ({format})"),
            None => base,
        },
    }
}

/// The description followed by the constraints the schema enforces.
fn cell(schema: &JSONSchemaProps) -> String {
    let mut parts = Vec::new();
    if let Some(description) = &schema.description {
        parts.push(one_line(description));
    }
    let mut constraints = Vec::new();
    if let Some(values) = &schema.enum_ {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.0.as_str().map_or(v.0.to_string(), str::to_string))
            .collect();
        constraints.push(format!("one of {}", code_list(&values)));
    }
    if let Some(pattern) = &schema.pattern {
        constraints.push(format!("pattern `{pattern}`"));
    }
    for (what, value) in [
        ("min length", schema.min_length),
        ("max length", schema.max_length),
        ("min items", schema.min_items),
        ("max items", schema.max_items),
        ("max entries", schema.max_properties),
    ] {
        if let Some(value) = value {
            constraints.push(format!("{what} {value}"));
        }
    }
    if let Some(minimum) = schema.minimum {
        constraints.push(format!("minimum {minimum}"));
    }
    if let Some(maximum) = schema.maximum {
        constraints.push(format!("maximum {maximum}"));
    }
    if !constraints.is_empty() {
        parts.push(format!("*{}.*", constraints.join("; ")));
    }
    parts.join(" ").replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn code_list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
