//! Web personas as data: per product, its `Server` and other headers, a table of routes
//! (method, path → status, headers, body template) and its own 404 page. Adding a persona is
//! adding a table entry, not code.
//!
//! Templates: `{host}` (the Host header's name, else the decky's hostname), `{origin}` (the
//! same with the Host header's port: the persona's own URLs), `{hostname}`,
//! `{HOSTNAME}` (upper case), `{port}`, `{server}`, `{path}` (HTML-escaped), `{user}` (the
//! username just tried, HTML-escaped), `{rand}` (32 random hex digits).

/// Which requests a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Any,
    /// GET and HEAD.
    Get,
    Post,
}

/// A response template.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
}

/// One route: `path` is exact, or a prefix when it ends in `*`. Path matching ignores ASCII
/// case when the persona runs on Windows (IIS).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub page: Page,
}

/// A web product.
#[derive(Debug, Clone, Copy)]
pub struct Persona {
    /// The `fake_app`/`persona` value that selects it.
    pub name: &'static str,
    /// Its `Server` header (`None`: it sends none, like Tomcat).
    pub server: Option<&'static str>,
    /// Headers on every response (`X-Powered-By` …).
    pub headers: &'static [(&'static str, &'static str)],
    /// Whether paths are case-insensitive (IIS).
    pub ignore_case: bool,
    /// Whether the status line carries a reason phrase (Tomcat 8.5+ sends none).
    pub reason_phrase: bool,
    /// Tomcat's Coyote connector: `Date` after the length, and its JSP pages (the 200 HTML
    /// pages) streamed: chunked to HTTP/1.1, delimited by the close to HTTP/1.0.
    pub coyote: bool,
    pub routes: &'static [Route],
    pub not_found: Page,
}

impl Persona {
    /// The page for `method path`; the persona's 404 when no route matches.
    pub fn page(&self, method: &str, path: &str) -> &Page {
        let eq = |a: &str, b: &str| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        self.routes
            .iter()
            .find(|r| {
                let m = match r.method {
                    Method::Any => true,
                    Method::Get => method == "GET" || method == "HEAD",
                    Method::Post => method == "POST",
                };
                let p = match r.path.strip_suffix('*') {
                    Some(prefix) => path
                        .get(..prefix.len())
                        .is_some_and(|head| eq(head, prefix)),
                    None => eq(path, r.path),
                };
                m && p
            })
            .map_or(&self.not_found, |r| &r.page)
    }
}

/// The persona called `name` (`fake_app` value), if any.
pub fn by_name(name: &str) -> Option<&'static Persona> {
    let name = match name.to_ascii_lowercase().as_str() {
        "none" | "default" => "apache",
        "exchange" | "outlook" => "owa",
        "synology" => "nas",
        other => return PERSONAS.iter().find(|p| p.name == other),
    };
    PERSONAS.iter().find(|p| p.name == name)
}

/// All personas.
pub fn all() -> &'static [Persona] {
    PERSONAS
}

const fn page(status: u16, content_type: &'static str, body: &'static str) -> Page {
    Page {
        status,
        content_type,
        headers: &[],
        body,
    }
}

const fn page_h(
    status: u16,
    content_type: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> Page {
    Page {
        status,
        content_type,
        headers,
        body,
    }
}

const fn route(method: Method, path: &'static str, page: Page) -> Route {
    Route { method, path, page }
}

const HTML: &str = "text/html; charset=UTF-8";
const APACHE_HTML: &str = "text/html; charset=iso-8859-1";
use Method::{Any, Get, Post};

// ---- page bodies ---------------------------------------------------------------------------

const APACHE_INDEX: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\">\n  <head>\n    <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
    <title>Apache2 Ubuntu Default Page: It works</title>\n  </head>\n  <body>\n    <div class=\"main_page\">\n\
      <div class=\"page_header floating_element\">\n        <span class=\"floating_element\">Apache2 Ubuntu Default Page</span>\n      </div>\n\
      <div class=\"section_header section_header_red\">\n        <div id=\"about\"></div>\n        It works!\n      </div>\n\
      <p>This is the default welcome page used to test the correct operation of the Apache2 server after installation on Ubuntu systems.\n\
      It is based on the equivalent page on Debian, from which the Ubuntu Apache packaging is derived.\n\
      If you can read this page, it means that the Apache HTTP server installed at this site is working properly.\n\
      You should <b>replace this file</b> (located at <tt>/var/www/html/index.html</tt>) before continuing to operate your HTTP server.</p>\n\
    </div>\n  </body>\n</html>\n";

const APACHE_404: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n\
<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n<hr>\n\
<address>{server} Server at {host} Port {port}</address>\n</body></html>\n";

const APACHE_403: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>403 Forbidden</title>\n</head><body>\n\
<h1>Forbidden</h1>\n<p>You don't have permission to access this resource.</p>\n<hr>\n\
<address>{server} Server at {host} Port {port}</address>\n</body></html>\n";

const NGINX_INDEX: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n<style>\n    body {\n        width: 35em;\n        margin: 0 auto;\n\
        font-family: Tahoma, Verdana, Arial, sans-serif;\n    }\n</style>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n\
<p>If you see this page, the nginx web server is successfully installed and\nworking. Further configuration is required.</p>\n\n\
<p>For online documentation and support please refer to\n<a href=\"http://nginx.org/\">nginx.org</a>.<br/>\n\
Commercial support is available at\n<a href=\"http://nginx.com/\">nginx.com</a>.</p>\n\n<p><em>Thank you for using nginx.</em></p>\n</body>\n</html>\n";

const NGINX_404: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n\
<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n";

const IIS_INDEX: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\" />\r\n\
<title>IIS Windows Server</title>\r\n<style type=\"text/css\">\r\n<!--\r\nbody {\r\n\tcolor:#000000;\r\n\tbackground-color:#0072C6;\r\n\tmargin:0;\r\n}\r\n-->\r\n</style>\r\n\
</head>\r\n<body>\r\n<div id=\"container\">\r\n<a href=\"http://go.microsoft.com/fwlink/?linkid=66138&amp;clcid=0x409\"><img src=\"iisstart.png\" alt=\"IIS\" width=\"960\" height=\"600\" /></a>\r\n\
</div>\r\n</body>\r\n</html>";

const IIS_404: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\"/>\r\n\
<title>404 - File or directory not found.</title>\r\n<style type=\"text/css\">\r\n<!--\r\nbody{margin:0;font-size:.7em;font-family:Verdana, Arial, Helvetica, sans-serif;background:#EEEEEE;}\r\n\
-->\r\n</style>\r\n</head>\r\n<body>\r\n<div id=\"header\"><h1>Server Error</h1></div>\r\n<div id=\"content\">\r\n <div class=\"content-container\"><fieldset>\r\n\
  <h2>404 - File or directory not found.</h2>\r\n  <h3>The resource you are looking for might have been removed, had its name changed, or is temporarily unavailable.</h3>\r\n\
 </fieldset></div>\r\n</div>\r\n</body>\r\n</html>\r\n";

const OWA_LOGON: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\r\n<!-- {57A118C6-2DA9-419d-BE9A-F92B0F9A418B} -->\r\n\
<html dir=\"ltr\">\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; CHARSET=utf-8\">\r\n<meta name=\"Robots\" content=\"NOINDEX, NOFOLLOW\">\r\n\
<title>Outlook</title>\r\n<link rel=\"stylesheet\" href=\"/owa/auth/15.1.2507/themes/resources/logon.css\">\r\n</head>\r\n<body class=\"signInBg\">\r\n\
<form action=\"/owa/auth.owa\" method=\"POST\" name=\"logonForm\" ENCTYPE=\"application/x-www-form-urlencoded\" autocomplete=\"off\">\r\n\
<input type=\"hidden\" name=\"destination\" value=\"https://{origin}/owa/\">\r\n<input type=\"hidden\" name=\"flags\" value=\"4\">\r\n\
<input type=\"hidden\" name=\"forcedownlevel\" value=\"0\">\r\n<div class=\"signInInputLabel\">Domain\\user name:</div>\r\n\
<input id=\"username\" name=\"username\" type=\"text\" class=\"signInInputText\" role=\"textbox\">\r\n<div class=\"signInInputLabel\">Password:</div>\r\n\
<input id=\"password\" name=\"password\" type=\"password\" class=\"signInInputText\" onfocus=\"g_fFcs=0\">\r\n\
<div onclick=\"clkLgn()\" class=\"signinbutton\" role=\"button\" tabIndex=\"0\" onkeypress=\"if (event.keyCode == 13) clkLgn();\"><span class=\"signinTxt\">sign in</span></div>\r\n</form>\r\n\
<script type=\"text/javascript\">function clkLgn(){document.forms[\"logonForm\"].submit();}</script>\r\n</body>\r\n</html>\r\n";

const WP_HOME: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta charset=\"UTF-8\" />\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n\
<meta name='robots' content='max-image-preview:large' />\n<title>{hostname} &#8211; Just another WordPress site</title>\n\
<link rel=\"alternate\" type=\"application/rss+xml\" title=\"{hostname} &raquo; Feed\" href=\"http://{origin}/feed/\" />\n\
<link rel=\"https://api.w.org/\" href=\"http://{origin}/wp-json/\" />\n<link rel=\"EditURI\" type=\"application/rsd+xml\" title=\"RSD\" href=\"http://{origin}/xmlrpc.php?rsd\" />\n\
<meta name=\"generator\" content=\"WordPress 6.2.2\" />\n</head>\n<body class=\"home blog wp-embed-responsive\">\n\
<div class=\"wp-site-blocks\"><header class=\"wp-block-template-part\"><p class=\"wp-block-site-title\"><a href=\"http://{origin}\" rel=\"home\">{hostname}</a></p></header>\n\
<main class=\"wp-block-group\"><h2 class=\"wp-block-post-title\"><a href=\"http://{origin}/2023/06/01/hello-world/\">Hello world!</a></h2>\n\
<div class=\"wp-block-post-excerpt\"><p class=\"wp-block-post-excerpt__excerpt\">Welcome to WordPress. This is your first post. Edit or delete it, then start writing! </p></div></main>\n\
<footer class=\"wp-block-template-part\"><p class=\"has-text-align-center\">Proudly powered by <a href=\"https://wordpress.org\" rel=\"nofollow\">WordPress</a></p></footer></div>\n</body>\n</html>\n";

const WP_LOGIN: &str = "<!DOCTYPE html>\n\t<html lang=\"en-US\">\n\t<head>\n\t<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
\t<title>Log In &lsaquo; {hostname} &#8212; WordPress</title>\n\t<meta name='robots' content='max-image-preview:large, noindex, noarchive' />\n\
<link rel='stylesheet' id='login-css' href='http://{origin}/wp-admin/css/login.min.css?ver=6.2.2' media='all' />\n\t</head>\n\
\t<body class=\"login no-js login-action-login wp-core-ui  locale-en-us\">\n\t<div id=\"login\">\n\t\t<h1><a href=\"https://wordpress.org/\">Powered by WordPress</a></h1>\n\
{error}\t\t<form name=\"loginform\" id=\"loginform\" action=\"http://{origin}/wp-login.php\" method=\"post\">\n\t\t\t<p>\n\
\t\t\t\t<label for=\"user_login\">Username or Email Address</label>\n\t\t\t\t<input type=\"text\" name=\"log\" id=\"user_login\" class=\"input\" value=\"{user}\" size=\"20\" autocapitalize=\"off\" autocomplete=\"username\" />\n\
\t\t\t</p>\n\t\t\t<div class=\"user-pass-wrap\">\n\t\t\t\t<label for=\"user_pass\">Password</label>\n\
\t\t\t\t<input type=\"password\" name=\"pwd\" id=\"user_pass\" class=\"input password-input\" value=\"\" size=\"20\" autocomplete=\"current-password\" />\n\
\t\t\t</div>\n\t\t\t<p class=\"forgetmenot\"><input name=\"rememberme\" type=\"checkbox\" id=\"rememberme\" value=\"forever\"  /> <label for=\"rememberme\">Remember Me</label></p>\n\
\t\t\t<p class=\"submit\">\n\t\t\t\t<input type=\"submit\" name=\"wp-submit\" id=\"wp-submit\" class=\"button button-primary button-large\" value=\"Log In\" />\n\
\t\t\t\t<input type=\"hidden\" name=\"redirect_to\" value=\"http://{origin}/wp-admin/\" />\n\t\t\t\t<input type=\"hidden\" name=\"testcookie\" value=\"1\" />\n\
\t\t\t</p>\n\t\t</form>\n\t\t<p id=\"nav\">\n\t\t\t<a href=\"http://{origin}/wp-login.php?action=lostpassword\">Lost your password?</a>\t\t</p>\n\t</div>\n\t</body>\n\t</html>\n";

const WP_404: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta charset=\"UTF-8\" />\n<title>Page not found &#8211; {hostname}</title>\n\
<meta name=\"generator\" content=\"WordPress 6.2.2\" />\n</head>\n<body class=\"error404 wp-embed-responsive\">\n\
<main class=\"wp-block-group\"><h1 class=\"has-text-align-center wp-block-heading\">Page Not Found</h1>\n\
<p class=\"has-text-align-center\">The page you are looking for does not exist, or it has been moved. Please try searching using the form below.</p>\n\
<form role=\"search\" method=\"get\" action=\"http://{origin}/\" class=\"wp-block-search\"><input type=\"search\" name=\"s\" /></form></main>\n</body>\n</html>\n";

const WP_JSON: &str = "{\"name\":\"{hostname}\",\"description\":\"Just another WordPress site\",\"url\":\"http://{origin}\",\"home\":\"http://{origin}\",\
\"gmt_offset\":\"0\",\"timezone_string\":\"\",\"namespaces\":[\"oembed/1.0\",\"wp/v2\",\"wp-site-health/v1\",\"wp-block-editor/v1\"],\
\"authentication\":[],\"routes\":{\"/\":{\"namespace\":\"\",\"methods\":[\"GET\"]},\"/wp/v2/users\":{\"namespace\":\"wp/v2\",\"methods\":[\"GET\",\"POST\"]}}}";

const WP_USERS: &str = "[{\"id\":1,\"name\":\"admin\",\"url\":\"http://{origin}\",\"description\":\"\",\"link\":\"http://{origin}/author/admin/\",\"slug\":\"admin\",\
\"avatar_urls\":{\"24\":\"http://1.gravatar.com/avatar/4b3c9e1a?s=24&d=mm&r=g\"},\"meta\":[]}]";

const XMLRPC_FAULT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse>\n  <fault>\n    <value>\n      <struct>\n\
        <member>\n          <name>faultCode</name>\n          <value><int>403</int></value>\n        </member>\n\
        <member>\n          <name>faultString</name>\n          <value><string>Incorrect username or password.</string></value>\n        </member>\n\
      </struct>\n    </value>\n  </fault>\n</methodResponse>\n";

const PMA_LOGIN: &str = "<!DOCTYPE HTML>\n<html lang=\"en\" dir=\"ltr\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n\
<meta name=\"robots\" content=\"noindex,nofollow\">\n<link rel=\"icon\" href=\"favicon.ico\" type=\"image/x-icon\">\n<title>phpMyAdmin</title>\n\
<link rel=\"stylesheet\" type=\"text/css\" href=\"./themes/pmahomme/css/theme.css?v=5.1.1\">\n</head>\n<body id=\"loginform\">\n<div class=\"container\">\n\
<a href=\"./url.php?url=https%3A%2F%2Fwww.phpmyadmin.net%2F\" target=\"_blank\" rel=\"noopener noreferrer\" class=\"logo\"><img src=\"./themes/pmahomme/img/logo_right.png\" id=\"imLogo\" name=\"imLogo\" alt=\"phpMyAdmin\" border=\"0\"></a>\n\
<h1>Welcome to <bdo dir=\"ltr\" lang=\"en\">phpMyAdmin</bdo></h1>\n{error}<form method=\"post\" id=\"login_form\" action=\"index.php?route=/\" name=\"login_form\" class=\"disableAjax hide js-show\">\n\
<fieldset><legend>Log in</legend>\n<div class=\"item\"><label for=\"input_username\">Username:</label><input type=\"text\" name=\"pma_username\" id=\"input_username\" value=\"{user}\" size=\"24\" class=\"textfield\" autocomplete=\"username\"></div>\n\
<div class=\"item\"><label for=\"input_password\">Password:</label><input type=\"password\" name=\"pma_password\" id=\"input_password\" value=\"\" size=\"24\" class=\"textfield\" autocomplete=\"current-password\"></div>\n\
<input type=\"hidden\" name=\"server\" value=\"1\"></fieldset><fieldset class=\"tblFooters\"><input class=\"btn btn-primary\" value=\"Go\" type=\"submit\" id=\"input_go\">\n\
<input type=\"hidden\" name=\"token\" value=\"{rand}\"></fieldset>\n</form>\n</div>\n</body>\n</html>\n";

const JENKINS_AUTH_REQUIRED: &str = "<html><head><meta http-equiv='refresh' content='1;url=/login?from=%2F'/><script>window.location.replace('/login?from=%2F');</script></head>\
<body style='background-color:white; color:white;'>\n\n\nAuthentication required\n<!--\n-->\n\n</body></html>\n";

const JENKINS_LOGIN: &str = "<!DOCTYPE html><html><head resURL=\"/static/6d2a1c4e\" data-rooturl=\"\" data-resurl=\"/static/6d2a1c4e\">\n\
<title>Sign in [Jenkins]</title><meta name=\"ROBOTS\" content=\"NOFOLLOW\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<link rel=\"stylesheet\" href=\"/static/6d2a1c4e/jsbundles/simple-page.css\" type=\"text/css\"></head>\n<body><div class=\"simple-page\" role=\"main\"><div class=\"modal login\"><div id=\"loginIntroDefault\">\n\
<div class=\"logo\"></div><h1>Welcome to Jenkins!</h1></div>\n{error}<form method=\"post\" name=\"login\" action=\"j_spring_security_check\">\n\
<div class=\"jenkins-form-item jenkins-form-item--tight\"><input autocorrect=\"off\" autocomplete=\"off\" name=\"j_username\" id=\"j_username\" placeholder=\"Username\" type=\"text\" class=\"jenkins-input normal\" autocapitalize=\"off\" aria-label=\"Username\"></div>\n\
<div class=\"jenkins-form-item jenkins-form-item--tight\"><input name=\"j_password\" placeholder=\"Password\" type=\"password\" class=\"jenkins-input normal\" aria-label=\"Password\"></div>\n\
<div class=\"jenkins-checkbox\"><input id=\"remember_me\" type=\"checkbox\" name=\"remember_me\"><label for=\"remember_me\">Keep me signed in</label></div>\n\
<input name=\"from\" type=\"hidden\"><div class=\"submit\"><button type=\"submit\" name=\"Submit\" class=\"jenkins-button jenkins-button--primary\">Sign in</button></div></form>\n\
<div class=\"footer\"></div></div></div></body></html>";

const JETTY_404: &str = "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n<title>Error 404 Not Found</title>\n</head>\n\
<body><h2>HTTP ERROR 404 Not Found</h2>\n<table>\n<tr><th>URI:</th><td>{path}</td></tr>\n<tr><th>STATUS:</th><td>404</td></tr>\n\
<tr><th>MESSAGE:</th><td>Not Found</td></tr>\n<tr><th>SERVLET:</th><td>Stapler</td></tr>\n</table>\n<hr><a href=\"https://eclipse.org/jetty\">Powered by Jetty:// 10.0.13</a><hr/>\n\n</body>\n</html>\n";

/// Tomcat 9's `ROOT/index.jsp` output; its comment, page directive and scriptlet lines leave
/// three newlines before the doctype.
const TOMCAT_INDEX: &str = "\n\n\n<!DOCTYPE html>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"UTF-8\" />\n        <title>Apache Tomcat/9.0.65</title>\n\
        <link href=\"favicon.ico\" rel=\"icon\" type=\"image/x-icon\" />\n        <link href=\"tomcat.css\" rel=\"stylesheet\" type=\"text/css\" />\n    </head>\n\n    <body>\n\
        <div id=\"wrapper\">\n            <div id=\"navigation\" class=\"curved container\">\n                <span id=\"nav-home\"><a href=\"https://tomcat.apache.org/\">Home</a></span>\n\
            </div>\n            <div id=\"asf-box\">\n                <h1>Apache Tomcat/9.0.65</h1>\n            </div>\n\
            <div id=\"congrats\" class=\"curved container\">\n                <h2>If you're seeing this, you've successfully installed Tomcat. Congratulations!</h2>\n            </div>\n\
            <div class=\"col25\"><div class=\"container\"><h3>Managing Tomcat</h3>\n<p>For security, access to the <a href=\"/manager/html\">manager webapp</a> is restricted.\n\
Users are defined in: <code>$CATALINA_HOME/conf/tomcat-users.xml</code></p>\n<ul><li><a href=\"/manager/status\">Server Status</a></li><li><a href=\"/manager/html\">Manager App</a></li><li><a href=\"/host-manager/html\">Host Manager</a></li></ul></div></div>\n\
        </div>\n    </body>\n\n</html>\n";

const TOMCAT_401: &str = "<!doctype html><html lang=\"en\"><head><title>401 Unauthorized</title></head><body><h1>401 Unauthorized</h1>\n\
<p>You are not authorized to view this page. If you have not changed any configuration files, please examine the file <tt>conf/tomcat-users.xml</tt> in your installation. That file must contain the credentials to let you use this webapp.</p>\n\
<p>For example, to add the <tt>manager-gui</tt> role to a user named <tt>tomcat</tt> with a password of <tt>s3cret</tt>, add the following to the config file listed above.</p>\n\
<pre>\n&lt;role rolename=\"manager-gui\"/&gt;\n&lt;user username=\"tomcat\" password=\"s3cret\" roles=\"manager-gui\"/&gt;\n</pre>\n</body></html>\n";

const TOMCAT_404: &str = "<!doctype html><html lang=\"en\"><head><title>HTTP Status 404 – Not Found</title><style type=\"text/css\">body {font-family:Tahoma,Arial,sans-serif;} h1, h2, h3, b {color:white;background-color:#525D76;} h1 {font-size:22px;} .line {height:1px;background-color:#525D76;border:none;}</style></head>\
<body><h1>HTTP Status 404 – Not Found</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p><p><b>Message</b> The requested resource [{path}] is not available</p>\
<p><b>Description</b> The origin server did not find a current representation for the target resource or is not willing to disclose that one exists.</p><hr class=\"line\" /><h3>Apache Tomcat/9.0.65</h3></body></html>";

const MINI_HTTPD_401: &str = "<HTML><HEAD><TITLE>401 Unauthorized</TITLE></HEAD>\n<BODY BGCOLOR=\"#cc9999\"><H4>401 Unauthorized</H4>\nAuthorization required.\n<HR>\n\
<ADDRESS><A HREF=\"http://www.acme.com/software/mini_httpd/\">mini_httpd/1.19 19dec2003</A></ADDRESS>\n</BODY></HTML>\n";

const MINI_HTTPD_404: &str = "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD>\n<BODY BGCOLOR=\"#cc9999\"><H4>404 Not Found</H4>\nFile not found.\n<HR>\n\
<ADDRESS><A HREF=\"http://www.acme.com/software/mini_httpd/\">mini_httpd/1.19 19dec2003</A></ADDRESS>\n</BODY></HTML>\n";

/// The ICS persona's HMI (a Siemens S7-200 CPU 226 with a CP 243-1 IT web module): the same
/// device its Modbus identification and SNMP `sysDescr` name.
const S7_INDEX: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n\
<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\n\
<title>Siemens, SIMATIC, S7-200 - {HOSTNAME}</title>\n\
<link rel=\"stylesheet\" type=\"text/css\" href=\"/S7Web.css\"></head>\n\
<body><table class=\"header\" width=\"100%\"><tr><td><b>SIMATIC S7-200</b></td>\
<td align=\"right\">CP 243-1 IT</td></tr></table>\n\
<h2>Station {HOSTNAME}</h2>\n\
<table class=\"status\">\n\
<tr><td>Module type</td><td>CPU 226 DC/DC/DC</td></tr>\n\
<tr><td>Order number</td><td>6ES7 216-2AD23-0XB0</td></tr>\n\
<tr><td>Firmware</td><td>V2.3</td></tr>\n\
<tr><td>Operating mode</td><td>RUN</td></tr>\n\
<tr><td>Vendor</td><td>Siemens AG</td></tr>\n\
</table>\n\
<h3>Login</h3>\n{error}<form method=\"post\" action=\"/FormLogin\">\n\
<table><tr><td>User</td><td><input type=\"text\" name=\"Login\" size=\"20\"></td></tr>\n\
<tr><td>Password</td><td><input type=\"password\" name=\"Password\" size=\"20\"></td></tr>\n\
<tr><td></td><td><input type=\"submit\" value=\"Log in\"></td></tr></table>\n\
<input type=\"hidden\" name=\"Redirection\" value=\"\"></form>\n\
</body></html>\n";

const S7_404: &str = "<html><head><title>404 Not Found</title></head>\n\
<body><h2>404 Not Found</h2>\n<p>The requested page {path} does not exist on this module.</p>\n</body></html>\n";

const DSM_INDEX: &str = "<!DOCTYPE html>\n<html class=\"img-no-dragging\">\n<head>\n<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0, maximum-scale=1.0, user-scalable=no\">\n<meta name=\"description\" content=\"DiskStation provides a full-featured network attached storage (NAS) solution to help you manage, backup and share data among Windows, Mac and Linux easily.\" />\n\
<meta name=\"application-name\" content=\"Synology DiskStation\" />\n<title>{hostname}&nbsp;-&nbsp;Synology DiskStation</title>\n\
<link rel=\"stylesheet\" type=\"text/css\" href=\"/scripts/ext-3/resources/css/ext-all.css?v=42962\" />\n</head>\n<body>\n\
<form id=\"login-form\" method=\"post\" action=\"/webapi/auth.cgi\"><input type=\"hidden\" name=\"api\" value=\"SYNO.API.Auth\"><input type=\"hidden\" name=\"method\" value=\"login\">\n\
<input type=\"text\" name=\"account\" placeholder=\"Username\"><input type=\"password\" name=\"passwd\" placeholder=\"Password\"><button type=\"submit\">Sign In</button></form>\n\
<noscript><div class='syno-no-script'>Your browser does not support JavaScript. Please turn on JavaScript and then log into DSM.</div></noscript>\n</body>\n</html>\n";

// ---- the table -----------------------------------------------------------------------------

static PERSONAS: &[Persona] = &[
    Persona {
        name: "apache",
        server: Some("Apache/2.4.52 (Ubuntu)"),
        headers: &[],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Get,
                "/",
                page_h(
                    200,
                    HTML,
                    &[
                        ("Last-Modified", "Tue, 14 Feb 2023 09:21:11 GMT"),
                        ("ETag", "\"29af-5f4a5d6f0c3c0\""),
                        ("Accept-Ranges", "bytes"),
                        ("Vary", "Accept-Encoding"),
                    ],
                    APACHE_INDEX,
                ),
            ),
            route(Get, "/index.html", page(200, HTML, APACHE_INDEX)),
            route(Any, "/server-status", page(403, APACHE_HTML, APACHE_403)),
            route(Any, "/.ht*", page(403, APACHE_HTML, APACHE_403)),
        ],
        not_found: page(404, APACHE_HTML, APACHE_404),
    },
    Persona {
        name: "nginx",
        server: Some("nginx/1.18.0 (Ubuntu)"),
        headers: &[],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Get,
                "/",
                page_h(
                    200,
                    "text/html",
                    &[
                        ("Last-Modified", "Tue, 14 Feb 2023 09:21:11 GMT"),
                        ("ETag", "\"63eb5287-264\""),
                        ("Accept-Ranges", "bytes"),
                    ],
                    NGINX_INDEX,
                ),
            ),
            route(Get, "/index.nginx-debian.html", page(200, "text/html", NGINX_INDEX)),
        ],
        not_found: page(404, "text/html", NGINX_404),
    },
    Persona {
        name: "iis",
        server: Some("Microsoft-IIS/10.0"),
        headers: &[("X-Powered-By", "ASP.NET")],
        ignore_case: true,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Get,
                "/",
                page_h(
                    200,
                    "text/html",
                    &[
                        ("Last-Modified", "Mon, 06 Mar 2023 14:02:31 GMT"),
                        ("Accept-Ranges", "bytes"),
                        ("ETag", "\"a3f1d5e2b250d91:0\""),
                    ],
                    IIS_INDEX,
                ),
            ),
            route(Get, "/iisstart.htm", page(200, "text/html", IIS_INDEX)),
        ],
        not_found: page(404, "text/html", IIS_404),
    },
    Persona {
        name: "owa",
        server: Some("Microsoft-IIS/10.0"),
        headers: &[
            ("X-Powered-By", "ASP.NET"),
            ("X-OWA-Version", "15.1.2507.6"),
            ("X-FEServer", "{HOSTNAME}"),
        ],
        ignore_case: true,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Any,
                "/",
                page_h(302, HTML, &[("Location", "https://{origin}/owa/")], ""),
            ),
            route(
                Post,
                "/owa/auth.owa",
                page_h(
                    302,
                    HTML,
                    &[
                        ("Location", "https://{origin}/owa/auth/logon.aspx?replaceCurrent=1&reason=2&url=https%3a%2f%2f{host}%2fowa%2f"),
                        ("Set-Cookie", "ClientId={rand}; expires=Fri, 03-Dec-2027 06:00:00 GMT; path=/; HttpOnly"),
                    ],
                    "",
                ),
            ),
            route(
                Get,
                "/owa/auth/logon.aspx",
                page_h(
                    200,
                    "text/html; charset=utf-8",
                    &[
                        ("Cache-Control", "no-cache, no-store"),
                        ("X-Frame-Options", "SAMEORIGIN"),
                    ],
                    OWA_LOGON,
                ),
            ),
            route(
                Any,
                "/owa*",
                page_h(
                    302,
                    HTML,
                    &[("Location", "https://{origin}/owa/auth/logon.aspx?url=https%3a%2f%2f{host}%2fowa%2f&reason=0")],
                    "",
                ),
            ),
            route(
                Any,
                "/autodiscover/*",
                page_h(
                    401,
                    HTML,
                    &[
                        ("WWW-Authenticate", "Negotiate"),
                        ("WWW-Authenticate", "NTLM"),
                        ("WWW-Authenticate", "Basic realm=\"{host}\""),
                    ],
                    "",
                ),
            ),
            route(
                Any,
                "/ews/*",
                page_h(
                    401,
                    HTML,
                    &[
                        ("WWW-Authenticate", "Negotiate"),
                        ("WWW-Authenticate", "NTLM"),
                        ("WWW-Authenticate", "Basic realm=\"{host}\""),
                    ],
                    "",
                ),
            ),
        ],
        not_found: page(404, "text/html", IIS_404),
    },
    Persona {
        name: "wordpress",
        server: Some("Apache/2.4.41 (Ubuntu)"),
        headers: &[("X-Powered-By", "PHP/7.4.3")],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Get,
                "/",
                page_h(
                    200,
                    HTML,
                    &[("Link", "<http://{origin}/wp-json/>; rel=\"https://api.w.org/\"")],
                    WP_HOME,
                ),
            ),
            route(
                Post,
                "/wp-login.php",
                page_h(
                    200,
                    HTML,
                    &[
                        ("Expires", "Wed, 11 Jan 1984 05:00:00 GMT"),
                        ("Cache-Control", "no-cache, must-revalidate, max-age=0"),
                        ("Set-Cookie", "wordpress_test_cookie=WP%20Cookie%20check; path=/; HttpOnly"),
                        ("X-Frame-Options", "SAMEORIGIN"),
                    ],
                    WP_LOGIN,
                ),
            ),
            route(
                Any,
                "/wp-login.php",
                page_h(
                    200,
                    HTML,
                    &[
                        ("Expires", "Wed, 11 Jan 1984 05:00:00 GMT"),
                        ("Cache-Control", "no-cache, must-revalidate, max-age=0"),
                        ("Set-Cookie", "wordpress_test_cookie=WP%20Cookie%20check; path=/; HttpOnly"),
                        ("X-Frame-Options", "SAMEORIGIN"),
                    ],
                    WP_LOGIN,
                ),
            ),
            route(
                Any,
                "/wp-admin*",
                page_h(
                    302,
                    HTML,
                    &[("Location", "http://{origin}/wp-login.php?redirect_to=http%3A%2F%2F{host}%2Fwp-admin%2F&reauth=1")],
                    "",
                ),
            ),
            route(Post, "/xmlrpc.php", page(200, "text/xml; charset=UTF-8", XMLRPC_FAULT)),
            route(
                Any,
                "/xmlrpc.php",
                page(405, "text/plain;charset=UTF-8", "XML-RPC server accepts POST requests only."),
            ),
            route(Any, "/wp-json/wp/v2/users*", page(200, "application/json; charset=UTF-8", WP_USERS)),
            route(Any, "/wp-json*", page(200, "application/json; charset=UTF-8", WP_JSON)),
            route(
                Get,
                "/robots.txt",
                page(200, "text/plain; charset=utf-8", "User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n\nSitemap: http://{origin}/wp-sitemap.xml\n"),
            ),
        ],
        not_found: page_h(
            404,
            HTML,
            &[
                ("Expires", "Wed, 11 Jan 1984 05:00:00 GMT"),
                ("Cache-Control", "no-cache, must-revalidate, max-age=0"),
                ("Link", "<http://{origin}/wp-json/>; rel=\"https://api.w.org/\""),
            ],
            WP_404,
        ),
    },
    Persona {
        name: "phpmyadmin",
        server: Some("Apache/2.4.41 (Ubuntu)"),
        headers: &[("X-Powered-By", "PHP/7.4.3")],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Any,
                "/",
                page_h(
                    200,
                    "text/html; charset=utf-8",
                    &[
                        ("Set-Cookie", "phpMyAdmin={rand}; path=/; HttpOnly; SameSite=Strict"),
                        ("Set-Cookie", "pma_lang=en; expires=Sat, 02-Jan-2027 06:00:00 GMT; Max-Age=2592000; path=/; HttpOnly; SameSite=Strict"),
                        ("X-Frame-Options", "DENY"),
                        ("X-Robots-Tag", "noindex, nofollow"),
                        ("Cache-Control", "no-store, no-cache, must-revalidate,  pre-check=0, post-check=0, max-age=0"),
                    ],
                    PMA_LOGIN,
                ),
            ),
            route(
                Any,
                "/index.php",
                page_h(
                    200,
                    "text/html; charset=utf-8",
                    &[
                        ("Set-Cookie", "phpMyAdmin={rand}; path=/; HttpOnly; SameSite=Strict"),
                        ("X-Frame-Options", "DENY"),
                        ("X-Robots-Tag", "noindex, nofollow"),
                    ],
                    PMA_LOGIN,
                ),
            ),
            route(Any, "/phpmyadmin", page_h(301, APACHE_HTML, &[("Location", "http://{origin}/phpmyadmin/")], "")),
            route(
                Any,
                "/phpmyadmin/*",
                page_h(
                    200,
                    "text/html; charset=utf-8",
                    &[
                        ("Set-Cookie", "phpMyAdmin={rand}; path=/phpmyadmin/; HttpOnly; SameSite=Strict"),
                        ("X-Frame-Options", "DENY"),
                        ("X-Robots-Tag", "noindex, nofollow"),
                    ],
                    PMA_LOGIN,
                ),
            ),
        ],
        not_found: page(404, APACHE_HTML, APACHE_404),
    },
    Persona {
        name: "jenkins",
        server: Some("Jetty(10.0.13)"),
        headers: &[
            ("X-Content-Type-Options", "nosniff"),
            ("X-Jenkins", "2.387.3"),
            ("X-Hudson", "1.395"),
            ("X-Jenkins-Session", "6d2a1c4e"),
        ],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Post,
                "/j_spring_security_check",
                page_h(302, HTML, &[("Location", "http://{origin}/loginError")], ""),
            ),
            route(
                Get,
                "/login",
                page_h(
                    200,
                    "text/html;charset=utf-8",
                    &[("Set-Cookie", "JSESSIONID.6d2a1c4e=node0{rand}.node0; Path=/; HttpOnly")],
                    JENKINS_LOGIN,
                ),
            ),
            route(Get, "/loginError", page(401, "text/html;charset=utf-8", JENKINS_LOGIN)),
            route(Get, "/robots.txt", page(200, "text/plain", "# we don't want robots to click \"build\" links\nUser-agent: *\nDisallow: /\n")),
            route(
                Any,
                "/",
                page_h(
                    403,
                    "text/html;charset=utf-8",
                    &[
                        ("X-You-Are-Authenticated-As", "anonymous"),
                        ("X-You-Are-In-Group-Disabled", "JENKINS-39402: use -Dhudson.security.AccessDeniedException2.REPORT_GROUP_HEADERS=true or use /whoAmI to diagnose"),
                        ("X-Required-Permission", "hudson.model.Hudson.Read"),
                        ("X-Permission-Implied-By", "hudson.security.Permission.GenericRead"),
                        ("Set-Cookie", "JSESSIONID.6d2a1c4e=node0{rand}.node0; Path=/; HttpOnly"),
                    ],
                    JENKINS_AUTH_REQUIRED,
                ),
            ),
            route(Any, "/script*", page(403, "text/html;charset=utf-8", JENKINS_AUTH_REQUIRED)),
            route(Any, "/manage*", page(403, "text/html;charset=utf-8", JENKINS_AUTH_REQUIRED)),
        ],
        not_found: page(404, "text/html;charset=iso-8859-1", JETTY_404),
    },
    Persona {
        name: "tomcat",
        server: None,
        headers: &[],
        ignore_case: false,
        reason_phrase: false,
        coyote: true,
        routes: &[
            route(Get, "/", page(200, "text/html;charset=UTF-8", TOMCAT_INDEX)),
            route(
                Any,
                "/manager/*",
                page_h(
                    401,
                    "text/html;charset=ISO-8859-1",
                    &[
                        ("Cache-Control", "private"),
                        ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
                        ("WWW-Authenticate", "Basic realm=\"Tomcat Manager Application\""),
                    ],
                    TOMCAT_401,
                ),
            ),
            route(
                Any,
                "/host-manager/*",
                page_h(
                    401,
                    "text/html;charset=ISO-8859-1",
                    &[
                        ("Cache-Control", "private"),
                        ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
                        ("WWW-Authenticate", "Basic realm=\"Tomcat Host Manager Application\""),
                    ],
                    TOMCAT_401,
                ),
            ),
            route(Any, "/manager", page_h(302, "text/html;charset=UTF-8", &[("Location", "/manager/")], "")),
        ],
        not_found: page_h(404, "text/html;charset=utf-8", &[("Content-Language", "en")], TOMCAT_404),
    },
    Persona {
        name: "router",
        server: Some("mini_httpd/1.19 19dec2003"),
        headers: &[],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(Get, "/favicon.ico", page(404, "text/html; charset=iso-8859-1", MINI_HTTPD_404)),
            route(
                Any,
                "/*",
                page_h(
                    401,
                    "text/html; charset=iso-8859-1",
                    &[
                        ("WWW-Authenticate", "Basic realm=\"NETGEAR R7000\""),
                        ("Cache-Control", "no-cache,no-store"),
                    ],
                    MINI_HTTPD_401,
                ),
            ),
        ],
        not_found: page(404, "text/html; charset=iso-8859-1", MINI_HTTPD_404),
    },
    Persona {
        name: "nas",
        server: Some("nginx"),
        headers: &[],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(
                Any,
                "/webapi/auth.cgi",
                page(200, "application/json; charset=\"UTF-8\"", "{\"error\":{\"code\":400},\"success\":false}"),
            ),
            route(
                Any,
                "/webapi/*",
                page(200, "application/json; charset=\"UTF-8\"", "{\"error\":{\"code\":119},\"success\":false}"),
            ),
            route(
                Get,
                "/",
                page_h(
                    200,
                    "text/html; charset=\"UTF-8\"",
                    &[
                        ("X-Content-Type-Options", "nosniff"),
                        ("X-XSS-Protection", "1; mode=block"),
                        ("P3P", "CP=\"IDC DSP COR ADM DEVi TAIi PSA PSD IVAi IVDi CONi HIS OUR IND CNT\""),
                    ],
                    DSM_INDEX,
                ),
            ),
            route(Get, "/webman/index.cgi", page(200, "text/html; charset=\"UTF-8\"", DSM_INDEX)),
        ],
        not_found: page(404, "text/html", NGINX_404),
    },
    Persona {
        name: "s7-hmi",
        server: Some("Siemens, SIMATIC, S7-200"),
        headers: &[("Cache-Control", "no-cache"), ("Pragma", "no-cache")],
        ignore_case: false,
        reason_phrase: true,
        coyote: false,
        routes: &[
            route(Get, "/", page(200, "text/html; charset=iso-8859-1", S7_INDEX)),
            route(Get, "/index.html", page(200, "text/html; charset=iso-8859-1", S7_INDEX)),
            route(Post, "/FormLogin", page(200, "text/html; charset=iso-8859-1", S7_INDEX)),
            route(
                Get,
                "/S7Web.css",
                page(200, "text/css", "body{font-family:Arial,sans-serif;font-size:10pt}.header{background:#00557f;color:#fff}\n"),
            ),
        ],
        not_found: page(404, "text/html; charset=iso-8859-1", S7_404),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_persona_has_an_index_and_a_404() {
        for p in all() {
            assert!(by_name(p.name).is_some(), "{}", p.name);
            assert_eq!(p.not_found.status, 404, "{}", p.name);
            let index = p.page("GET", "/");
            assert!(
                [200, 302, 401, 403].contains(&index.status),
                "{}: {}",
                p.name,
                index.status
            );
            assert_eq!(
                p.page("GET", "/no-such-thing-here.php").status,
                if p.name == "router" { 401 } else { 404 },
                "{}",
                p.name
            );
        }
        assert_eq!(by_name("none").map(|p| p.name), Some("apache"));
        assert!(by_name("gopher").is_none());
    }

    #[test]
    fn routes_match_by_method_prefix_and_case() {
        let wp = by_name("wordpress").expect("wp");
        assert_eq!(wp.page("POST", "/xmlrpc.php").status, 200);
        assert_eq!(wp.page("GET", "/xmlrpc.php").status, 405);
        assert_eq!(wp.page("HEAD", "/").status, 200);
        assert_eq!(wp.page("POST", "/").status, 404);
        assert_eq!(wp.page("GET", "/wp-admin/options.php").status, 302);
        let owa = by_name("owa").expect("owa");
        assert_eq!(owa.page("GET", "/OWA/auth/logon.aspx").status, 200);
        assert_eq!(owa.page("GET", "/owa/").status, 302);
        let tc = by_name("tomcat").expect("tomcat");
        assert_eq!(tc.page("GET", "/manager/html").status, 401);
        assert_eq!(tc.page("GET", "/Manager/html").status, 404);
    }
}
