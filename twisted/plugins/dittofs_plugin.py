from twisted.application.service import ServiceMaker

dittofs = ServiceMaker("dittofs", "dittofs.tap", "DittoFS NFSv3 file server", "dittofs")
