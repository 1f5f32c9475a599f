//! The route table: every served method and path template, written once. It drives dispatch,
//! 405 answers with `Allow`, `HEAD` wherever `GET` is served, the route name the access log
//! prints (the template, never the raw path), and the test that the OpenAPI document lists
//! exactly these routes.

use std::sync::LazyLock;

use http::Method;

use crate::identity::Access;

/// What a route does; dispatch matches on it, so a route without a handler does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Health,
    Ready,
    Metrics,
    ListSales,
    CreateSale,
    GetSale,
    SaleEvents,
    Purchase,
    Reconcile,
    EndSale,
    Report,
    Join,
    GetTicket,
    TicketEvents,
    ListOrders,
    GetOrder,
    Pay,
    Cancel,
    LegacyAdd,
    LegacyAll,
    LegacyOne,
    Dashboard,
    DashboardAsset,
    SwaggerUi,
    Document,
    SwaggerAsset,
}

/// One served route.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: Method,
    /// The path, `{name}` standing for one segment, as the OpenAPI document writes it.
    pub(crate) template: &'static str,
    pub(crate) handler: Handler,
    /// Who may call it, once the server has credentials.
    pub(crate) access: Access,
    /// Whether the OpenAPI document lists it (Swagger UI's own assets are not API).
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the test holding the OpenAPI document to the table reads it"
        )
    )]
    pub(crate) documented: bool,
}

const fn route(method: Method, template: &'static str, handler: Handler, access: Access) -> Route {
    Route {
        method,
        template,
        handler,
        access,
        documented: true,
    }
}

/// A route the OpenAPI document leaves out, open to anyone.
const fn undocumented(method: Method, template: &'static str, handler: Handler) -> Route {
    Route {
        method,
        template,
        handler,
        access: Access::Anyone,
        documented: false,
    }
}

use Access::{Admin, Anyone, Buyer, Orders, Owner, Payment};

/// Every route, literal segments before `{name}` ones where both could match.
// One route a line, as a table reads.
#[rustfmt::skip]
pub(crate) static ROUTES: [Route; 26] = [
    route(Method::GET,  "/health",                 Handler::Health,      Anyone),
    route(Method::GET,  "/ready",                  Handler::Ready,       Anyone),
    route(Method::GET,  "/metrics",                Handler::Metrics,     Anyone),
    route(Method::GET,  "/v1/sales",               Handler::ListSales,   Anyone),
    route(Method::POST, "/v1/sales",               Handler::CreateSale,  Admin),
    route(Method::GET,  "/v1/sales/{sku}",         Handler::GetSale,     Anyone),
    route(Method::GET,  "/v1/sales/{sku}/events",  Handler::SaleEvents,  Anyone),
    route(Method::POST, "/v1/sales/{sku}/purchase", Handler::Purchase,   Buyer),
    route(Method::POST, "/v1/sales/{sku}/reconcile", Handler::Reconcile, Admin),
    route(Method::POST, "/v1/sales/{sku}/end",     Handler::EndSale,     Admin),
    route(Method::GET,  "/v1/sales/{sku}/report",  Handler::Report,      Admin),
    route(Method::POST, "/v1/sales/{sku}/queue",   Handler::Join,        Buyer),
    route(Method::GET,  "/v1/sales/{sku}/queue/{ticket}", Handler::GetTicket, Buyer),
    route(Method::GET,  "/v1/sales/{sku}/queue/{ticket}/events", Handler::TicketEvents, Buyer),
    route(Method::GET,  "/v1/orders",              Handler::ListOrders,  Orders),
    route(Method::GET,  "/v1/orders/{id}",         Handler::GetOrder,    Owner),
    route(Method::POST, "/v1/orders/{id}/pay",     Handler::Pay,         Payment),
    route(Method::POST, "/v1/orders/{id}/cancel",  Handler::Cancel,      Owner),
    route(Method::POST, "/seckill/add",            Handler::LegacyAdd,   Buyer),
    route(Method::GET,  "/order/all",              Handler::LegacyAll,   Admin),
    route(Method::GET,  "/order/{id}",             Handler::LegacyOne,   Owner),
    route(Method::GET,  "/dashboard",              Handler::Dashboard,   Anyone),
    undocumented(Method::GET, "/dashboard/{file}", Handler::DashboardAsset),
    route(Method::GET,  "/api-docs",               Handler::SwaggerUi,   Anyone),
    route(Method::GET,  "/api-docs/openapi.json",  Handler::Document,    Anyone),
    undocumented(Method::GET, "/api-docs/{file}",  Handler::SwaggerAsset),
];

/// A template split once: `None` for a `{name}` segment.
static SPLIT: LazyLock<Vec<Vec<Option<&'static str>>>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|route| {
            route
                .template
                .trim_start_matches('/')
                .split('/')
                .map(|part| (!part.starts_with('{')).then_some(part))
                .collect()
        })
        .collect()
});

/// The path's `{name}` segments, in order (no route has more than two).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Params<'p> {
    values: [&'p str; 2],
}

impl<'p> Params<'p> {
    /// The first `{name}` segment.
    pub(crate) fn first(&self) -> &'p str {
        self.values[0]
    }

    /// The second `{name}` segment (empty when the template has one).
    pub(crate) fn second(&self) -> &'p str {
        self.values[1]
    }
}

fn matches<'p>(template: &[Option<&'static str>], segments: &[&'p str]) -> Option<Params<'p>> {
    if template.len() != segments.len() {
        return None;
    }
    let mut params = Params::default();
    let mut captured = 0;
    for (part, segment) in template.iter().zip(segments) {
        match part {
            Some(literal) if literal != segment => return None,
            Some(_) => {}
            None => {
                *params.values.get_mut(captured)? = segment;
                captured += 1;
            }
        }
    }
    Some(params)
}

/// What a method and path select.
#[derive(Debug)]
pub(crate) enum Lookup<'p> {
    /// The route, and the path's `{name}` segments.
    Found(&'static Route, Params<'p>),
    /// The path is served, by other methods: the `Allow` header's value.
    WrongMethod(String),
    /// No route has this path.
    NotFound,
}

/// Finds the route for `method` on the path's decoded `segments`; `HEAD` finds the `GET` route.
pub(crate) fn lookup<'p>(method: &Method, segments: &[&'p str]) -> Lookup<'p> {
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let mut allowed: Vec<&Method> = Vec::new();
    for (route, template) in ROUTES.iter().zip(SPLIT.iter()) {
        let Some(params) = matches(template, segments) else {
            continue;
        };
        if route.method == wanted {
            return Lookup::Found(route, params);
        }
        if !allowed.contains(&&route.method) {
            allowed.push(&route.method);
        }
    }
    if allowed.is_empty() {
        return Lookup::NotFound;
    }
    let mut allow: Vec<&str> = Vec::new();
    for method in allowed {
        allow.push(method.as_str());
        if method == Method::GET {
            allow.push("HEAD");
        }
    }
    Lookup::WrongMethod(allow.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: Method, path: &[&str]) -> Option<(Handler, String)> {
        match lookup(&method, path) {
            Lookup::Found(route, params) => Some((route.handler, params.first().to_owned())),
            _ => None,
        }
    }

    #[test]
    fn literal_segments_win_and_names_capture_one_segment() {
        assert_eq!(
            found(Method::GET, &["order", "all"]),
            Some((Handler::LegacyAll, String::new()))
        );
        assert_eq!(
            found(Method::GET, &["order", "42"]),
            Some((Handler::LegacyOne, "42".into()))
        );
        assert_eq!(
            found(Method::HEAD, &["v1", "sales", "ps5"]),
            Some((Handler::GetSale, "ps5".into()))
        );
        assert_eq!(
            found(Method::GET, &["api-docs", "openapi.json"]).map(|f| f.0),
            Some(Handler::Document)
        );
        assert_eq!(
            found(Method::GET, &["api-docs", "index.css"]),
            Some((Handler::SwaggerAsset, "index.css".into()))
        );
        assert!(found(Method::GET, &["v1", "sales", "ps5", "extra"]).is_none());
    }

    #[test]
    fn a_path_served_by_other_methods_names_them() {
        match lookup(&Method::DELETE, &["v1", "sales"]) {
            Lookup::WrongMethod(allow) => assert_eq!(allow, "GET, HEAD, POST"),
            other => panic!("{other:?}"),
        }
        match lookup(&Method::GET, &["v1", "orders", "x", "pay"]) {
            Lookup::WrongMethod(allow) => assert_eq!(allow, "POST"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(lookup(&Method::GET, &["nope"]), Lookup::NotFound));
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_served_routes() {
        let document = serde_json::to_value(super::super::openapi()).expect("document");
        let mut listed: Vec<String> = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if method != "parameters" {
                    listed.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        let mut served: Vec<String> = ROUTES
            .iter()
            .filter(|route| route.documented)
            .map(|route| format!("{} {}", route.method, route.template))
            .collect();
        listed.sort();
        served.sort();
        assert_eq!(listed, served);
    }
}
