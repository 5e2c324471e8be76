# The app served by uvicorn on a real socket (the draw crowd goes through real HTTP).
from tests.seckill.test_crowd import http_base_url as http_base_url
