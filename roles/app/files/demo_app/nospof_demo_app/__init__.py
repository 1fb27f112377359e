"""nospof demo app: a small users API that shows the web tier's read/write split.

Run it with gunicorn: ``gunicorn nospof_demo_app.wsgi:application``.

Configuration, all from environment variables (the app role renders them into an
env file, mode 0600):

APP_DB_WRITE_HOST          required; the primary, which takes every write and the schema.
APP_DB_WRITE_PORT          the primary's port; default 3306.
APP_DB_READ_HOSTS          comma separated host[:port] list of replicas (IPv6 as [addr]:port);
                           empty means reads go to the primary too.
APP_DB_NAME                required; the database (schema) name.
APP_DB_USER                required; needs CREATE, SELECT, INSERT and DELETE on APP_DB_NAME.
APP_DB_PASSWORD            the user's password; default empty.
APP_SERVED_BY              the name in X-Served-By (printable ASCII); default socket.gethostname().
APP_RELEASE                the release id in /healthz and X-App-Release (printable ASCII); default "unknown".
APP_DB_CONNECT_TIMEOUT     seconds to wait for a TCP connect and login; default 1.
APP_DB_QUERY_TIMEOUT       seconds to wait for a query's answer; default 5.
APP_DB_REPLICA_RETRY_AFTER seconds a replica that failed is skipped for reads; default 5.

A missing required variable or a malformed value raises ConfigError when
``nospof_demo_app.wsgi`` is imported, so gunicorn fails to boot and says why.
"""

__version__ = "1.0.0"
